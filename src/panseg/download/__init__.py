"""Dataset download: official archive facts, parallel resumable HTTP, verified atomic extraction.

Never imports torch. Modules: :mod:`.archives` (URLs, sizes, md5s), :mod:`.http` (ranged
downloader), :mod:`.extract` (zip extraction), :mod:`.fetch` (download + extract a list),
:mod:`.cityscapes` (the cityscapes-dataset.com login).
"""

from panseg.download.archives import (
    CITYSCAPES_ARCHIVES,
    CITYSCAPES_BASE_URL,
    COCO_ARCHIVES,
    COCO_BASE_URL,
    COCO_DEFAULT_PARTS,
    COCO_PARTS,
    Archive,
    coco_archives,
)
from panseg.download.cityscapes import LoginError, cityscapes_login
from panseg.download.extract import ExtractError, extract_zip
from panseg.download.fetch import fetch_archives
from panseg.download.http import ChecksumError, DownloadError, download_file, probe, verify_file

__all__ = [
    "Archive",
    "CITYSCAPES_ARCHIVES",
    "CITYSCAPES_BASE_URL",
    "COCO_ARCHIVES",
    "COCO_BASE_URL",
    "COCO_DEFAULT_PARTS",
    "COCO_PARTS",
    "ChecksumError",
    "DownloadError",
    "ExtractError",
    "LoginError",
    "cityscapes_login",
    "coco_archives",
    "download_file",
    "extract_zip",
    "fetch_archives",
    "probe",
    "verify_file",
]
