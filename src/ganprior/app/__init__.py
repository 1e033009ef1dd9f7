"""The studio: a local web app over the library's DragGAN engine (Drag tab) and pix2pixHD
synthesis (Paint tab), `ganprior serve`.

- catalog.py: which models a client may open (the zoo, and checkpoint files inside the model
  folder only);
- sessions.py: one session per browser tab (its model, latent, points, drag and undo history),
  expiring when idle; nothing here knows about HTTP;
- paint.py: the Paint tab's part of a session (a pix2pixHD model's label and instance maps,
  each instance's feature cluster), edited by the client's messages over the library's
  synthesis/editing.py;
- server.py: the FastAPI app (`create_app`): JSON endpoints, uploads, downloads and the
  WebSocket that streams every drag and inversion step and carries the paint edits;
- static/: the front end (plain HTML, JS and CSS; no build step, nothing from the internet).

Needs the `ui` extras (fastapi, uvicorn); the rest of ganprior does not.
"""
