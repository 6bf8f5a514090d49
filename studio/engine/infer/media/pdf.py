"""PDF pages as images (pypdfium2, one document at a time).
"""

from __future__ import annotations

import math
import re
import threading
from typing import TYPE_CHECKING

from PIL import Image

from studio.engine.infer.media.images import normalize_image
from studio.engine.infer.media.limits import (IMAGE_BYTES_PER_PIXEL, MAX_IMAGE_PIXELS, MAX_PDF_PAGES,
                                              MAX_TURN_BYTES, PDF_DPI, _check_file, _name, kind_of)
from studio.errors import InputError, MediaError

if TYPE_CHECKING:  # pragma: no cover
    import os


# --------------------------------------------------------------------------------------
# PDF
# --------------------------------------------------------------------------------------

def load_pdf(path: str | os.PathLike, max_pages: int = MAX_PDF_PAGES, dpi: int = PDF_DPI,
             budget_bytes: int = MAX_TURN_BYTES) -> list[Image.Image]:
    """Render each page of a PDF to an RGB image with pypdfium2.

    Pages are rendered at ``dpi``, lowered per page so that no page has more pixels than
    its share of the budget: ``min(MAX_IMAGE_PIXELS, budget_bytes / 4 / pages)``. The
    scale is computed from the page size in points *before* rendering, so a 200-inch page
    never becomes a 368-megapixel bitmap. Then the image rules apply (aspect, min side).

    Args:
        path: the PDF file.
        max_pages: refuse PDFs with more pages than this (default :data:`MAX_PDF_PAGES`).
        dpi: render resolution in dots per inch (default :data:`PDF_DPI`).
        budget_bytes: decoded bytes all pages together may hold (default
            :data:`~studio.engine.infer.media.limits.MAX_TURN_BYTES`; 4 bytes per pixel).

    Returns:
        list of RGB ``PIL.Image.Image``, one per page, in page order.

    Raises:
        MediaError: missing/empty/corrupt file, password-protected PDF, PDF with no pages,
            more than ``max_pages`` pages.
    """
    with _PDFIUM_LOCK:
        return _load_pdf_unlocked(path, max_pages, dpi, budget_bytes)


#: PDFium is not thread-safe (pypdfium2 docs): two gradio workers rendering at once
#: crashed the process in PDFium's font code. Every PDFium call goes through this lock.
_PDFIUM_LOCK = threading.Lock()


def _load_pdf_unlocked(path, max_pages: int, dpi: int, budget_bytes: int) -> list[Image.Image]:
    import pypdfium2 as pdfium

    p = _check_file(path)
    name = _name(p)
    if kind_of(p) != "pdf":
        raise MediaError(f"{name!r} is not a PDF. Choose a PDF file.")
    if not (isinstance(dpi, int) and 24 <= dpi <= 600):
        raise InputError(f"PDF dpi must be a whole number from 24 to 600, got {dpi!r}.")
    try:
        doc = pdfium.PdfDocument(str(p))
    except pdfium.PdfiumError:
        # PDFium's error code is a process-wide "last error" that a failed load does not
        # always reset (a 0-page file reports the previous file's code), so look at the
        # bytes: encryption and an empty page tree are both visible there.
        data = p.read_bytes()
        if b"/Encrypt" in data:
            raise MediaError(
                f"{name!r} is password-protected (encrypted). Remove the password, e.g. print "
                f"it to a new PDF, and upload that."
            ) from None
        if re.search(rb"/Count\s*0\b", data) and not re.search(rb"/Count\s*[1-9]", data):
            raise MediaError(f"{name!r} has no pages. Choose a PDF with at least one page.") from None
        raise MediaError(
            f"{name!r} is not a readable PDF; it is corrupt or truncated. Re-export or "
            f"re-download it."
        ) from None
    try:
        n = len(doc)
        if n == 0:
            raise MediaError(f"{name!r} has no pages. Choose a PDF with at least one page.")
        if n > max_pages:
            raise MediaError(
                f"{name!r} has {n} pages; at most {max_pages} pages per PDF are allowed. "
                f"Split it, or extract the pages you need."
            )
        pages = []
        page_pixels = max(1, min(MAX_IMAGE_PIXELS, budget_bytes // IMAGE_BYTES_PER_PIXEL // n))
        for i in range(n):
            page = doc[i]
            try:
                w_pt, h_pt = page.get_size()
                scale = dpi / 72.0
                px = max(1.0, w_pt * scale) * max(1.0, h_pt * scale)
                if px > page_pixels:
                    scale *= math.sqrt(page_pixels / px)
                bitmap = page.render(scale=scale)
                img = bitmap.to_pil()  # may share the bitmap's buffer: both are dropped after the copy below
                pages.append(normalize_image(img, f"{name} page {i + 1}", max_pixels=page_pixels))
                del img, bitmap
            except pdfium.PdfiumError as e:
                raise MediaError(
                    f"Page {i + 1} of {name!r} could not be rendered ({e}). Re-export the PDF."
                ) from None
            finally:
                page.close()
        return pages
    finally:
        doc.close()
