"""One module per annotation format the labelling tools export (class folders, labelImg VOC XML, YOLO txt)."""
