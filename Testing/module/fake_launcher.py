"""A stand-in for Slicer's PythonSlicer launcher (CTKAppLauncher): it starts the real program as its
child, in its own process group, and waits for it, passing the exit code on. Terminating only this
process leaves the child running, as with the real launcher.

    python fake_launcher.py PROGRAM [ARGUMENTS...]
"""

import subprocess
import sys

if __name__ == "__main__":
    sys.exit(subprocess.call(sys.argv[1:]))
