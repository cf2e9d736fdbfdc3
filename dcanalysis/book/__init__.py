"""The book's machinery: the papermill runner and HTML build (``python -m dcanalysis.book``), one figure
function per paper figure (``plotting``), and the denoising explorer (``explorer``)."""
