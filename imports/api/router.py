"""The one router every API module adds its routes to: one path with several methods (GET and POST
/api/uploads) must be one route, whichever modules its methods live in."""

from __future__ import annotations

from ninja import Router

router = Router()
