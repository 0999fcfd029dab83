"""Reading what lands on disk (DICOM, PNG, JPEG) into gray display-polarity images; no Qt."""

from cxr_desktop.studies.study import LoadedStudy, StudyError, StudyInfo

__all__ = ["LoadedStudy", "StudyError", "StudyInfo"]
