"""Copy the TensorFlow protobuf modules that serving.tfs_apis imports into a folder.

Run in the gateway image's build stage that has TensorFlow installed; the final
stage takes the folder and never gets the TensorFlow runtime.
"""

import pathlib
import shutil
import sys

import serving.tfs_apis  # noqa: F401  (loads every generated module the gateway needs)


def main(target_root: pathlib.Path) -> None:
    site = pathlib.Path(sys.modules["tensorflow.core"].__path__[0]).parents[1]
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name.startswith("tensorflow.") and path:
            target = target_root / pathlib.Path(path).relative_to(site)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
