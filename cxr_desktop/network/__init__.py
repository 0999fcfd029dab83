"""Hospital connectivity: the DICOM node (``cxr-triage listen``, the app's "Receive from PACS") that receives
chest radiographs by C-STORE, triages them through the triage session, and sends its results back as DICOM
(a TID 1500 structured report, and for an urgent study a heatmap secondary capture) through a persistent
outbox. Built on pynetdicom and highdicom. Sits above the worklist and below the ui."""
