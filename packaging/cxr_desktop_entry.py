"""PyInstaller entry point of the desktop app (the same main() as the `cxr-desktop` script)."""

from cxr_desktop.ui.app import main

if __name__ == "__main__":
    raise SystemExit(main())
