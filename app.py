"""Run the web app: ``python app.py`` (also the Hugging Face Space's entry point, see the README's front matter).

Loads the checkpoints once (``SongGenerator``), builds the page (``app.ui.create_ui``) and serves it. Settings come
from the environment, as a Space passes them:

- GRADIO_SERVER_NAME, GRADIO_SERVER_PORT: host and port, read by Gradio itself (default 127.0.0.1:7860; a Space
  sets them);
- DUOSONG_CHECKPOINTS: the folder holding duotok-tiny/ and lm-tiny/ (default: the project's checkpoints/, like
  ``python -m app --checkpoints``).

``import app`` below finds the ``app/`` package, not this file: Python prefers a package directory over a module
of the same name on the same path.
"""

import logging
import os

from app.pipeline import DEFAULT_CHECKPOINTS, SongGenerator
from app.ui import create_ui


def main() -> None:
    # The tracebacks the UI keeps from users go to the server log (stderr), with a time and the module name.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    generator = SongGenerator(os.environ.get("DUOSONG_CHECKPOINTS") or DEFAULT_CHECKPOINTS)
    create_ui(generator).launch()


if __name__ == "__main__":
    main()
