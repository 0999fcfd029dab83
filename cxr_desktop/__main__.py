"""``python -m cxr_desktop`` and the frozen app's entry point."""

import multiprocessing

from cxr_desktop.ui.app import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    raise SystemExit(main())
