"""Two reviews whose sentiment any model trained on IMDB gets right."""

POSITIVE = "A wonderful, brilliant film. The acting was excellent and the story beautiful. Loved it, a great movie."
NEGATIVE = "Awful, boring and stupid. The worst movie ever, a waste of time. Terrible acting, bad plot."
