"""Find the labelled images under an input root, detecting each folder's layout.

Layouts, mixed freely in one tree (``corrosion-detector`` has class folders under ``download/``
and VOC under ``objDet/``):

* **VOC**: labelImg XML anywhere; it names its image by ``<filename>`` relative to its folder.
* **LabelMe**: JSON anywhere; it names its image by ``imagePath`` relative to its folder.
* **COCO**: an instances JSON anywhere (``images`` + ``annotations``), naming many images.
* **YOLO**: ``X/images/*`` with ``X/labels/*.txt`` (boxes and YOLO-seg polygons), class names
  from the nearest ``data.yaml``.
* **masks**: ``X/images/*`` with ``X/masks/<same stem>.png``; with an annotation beside it the mask
  gives the pixels and the annotation the boxes, alone it gives both (boxes from its regions).
* **class folders**: an ancestor folder named by a label alias (``rust``, ``NOCORROSION``...).

The work is split into pure steps (``plan_unit``, ``parse_annotation``, ``label_image``) that the
Beam pipeline runs as transforms (a unit is one folder, or the parent of ``images``/``labels``)
and that ``scan`` chains in plain Python for evaluation and tests. An image is claimed by a VOC
XML, LabelMe or COCO file first, then by its YOLO label file, then by its mask, then by its class
folder; otherwise it is rejected.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from corrosion.core import io_utils, listing, paths, safe_json
from corrosion.core.annotations import LabelledImage
from corrosion.core.labels import NO_RUST, LabelConfig
from corrosion.core.rejects import ANNOTATION, DISCOVER, AnnotationError, Reject, short_repr
from corrosion.data.layout import canonical_split
from corrosion.data.readers import class_folders, coco, labelme, voc, yolo

log = logging.getLogger(__name__)

YOLO_DIRS = ("images", "labels")
MASK_DIR = "masks"
UNIT_DIRS = (*YOLO_DIRS, MASK_DIR)  # sub-folders that belong to their parent's unit
ANNOTATION_EXTS = (".xml", ".json")
VOC_IMAGE_FOLDERS = ("JPEGImages", "images", "Images")
NOTE_FILENAME_FALLBACK = "voc_filename_fallback"  # a stale <filename>; the same-stem image beside the XML was used
NOTE_NEGATIVE = "no_annotation_negative"  # missing_annotation_is_negative made an unannotated image a negative


@dataclass(frozen=True)
class ImageTask:
    """One image file and every hint about its label that the folder structure gives."""

    path: str
    root: str
    source: str
    source_split: str | None
    layout: str  # voc | yolo | folders | flat
    class_hint: str | None = None  # from a class folder
    label_path: str | None = None  # YOLO label file, when one exists
    yolo_names: tuple[str | None, ...] | None = None  # data.yaml names indexed by class id
    yolo_error: tuple[str, str, str] | None = None  # (reason, path, detail) when data.yaml is unusable
    mask_path: str | None = None  # masks/<stem>.png beside images/, when one exists


@dataclass(frozen=True)
class AnnotationTask:
    path: str
    root: str
    source: str
    source_split: str | None
    default_image: str | None  # the same-stem image beside it, used when <filename> is stale


@dataclass(frozen=True)
class CocoEntry:
    """One image of a COCO file: the file (categories, annotations) and the image's entry."""

    coco: coco.CocoFile
    image: coco.CocoImage


@dataclass(frozen=True)
class ParsedAnnotation:
    """An XML after parsing: its annotation, or why it was refused (keyed by the image it claims)."""

    annotation_path: str
    annotation: voc.VocAnnotation | labelme.LabelMeAnnotation | CocoEntry | None = None
    error: Reject | None = None
    note: str | None = None


@dataclass(frozen=True)
class UnitPlan:
    images: tuple[ImageTask, ...] = ()
    annotations: tuple[AnnotationTask, ...] = ()
    rejects: tuple[Reject, ...] = ()
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True)
class Labelling:
    """The result of labelling one image: a LabelledImage or the image's reject, plus annotation rows."""

    labelled: LabelledImage | None
    image_reject: Reject | None = None
    rejects: tuple[Reject, ...] = ()


@dataclass
class ScanResult:
    images: list[LabelledImage] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- listing and units


def source_name(root: str) -> str:
    return paths.name(paths.normalise(root)) or "input"


def list_inputs(root: str, exclude: Iterable[str] = (), follow_outside: bool = False) -> tuple[list[str], list[Reject]]:
    """Every readable file under ``root`` (local or gs://; normalised, sorted) and a reject for each
    name that is no readable file (dangling symlink, FIFO, device, non-UTF-8 name).

    Files under ``exclude`` (a tool's own output folder inside its input) are left out.
    """
    found, rejects = [], []
    for item in listing.walk(root, exclude, follow_outside):  # links out of root: rejects, unless asked
        if isinstance(item, listing.Problem):
            rejects.append(Reject(item.path, DISCOVER, item.reason, item.detail))
        else:
            found.append(paths.normalise(item.path))
    return sorted(found), rejects


def list_files(root: str) -> list[str]:
    """Every readable file under ``root`` (local or gs://), normalised paths, sorted."""
    return list_inputs(root)[0]


def read_annotation(path: str) -> bytes:
    """An annotation file's bytes, refused unread past ``io_utils.MAX_ANNOTATION_BYTES``."""
    return io_utils.read_bytes(path, io_utils.MAX_ANNOTATION_BYTES)


def unit_of(path: str) -> str:
    """The planning unit of a file: its folder, or the parent of a YOLO ``images``/``labels`` folder."""
    folder = paths.parent(path)
    return paths.parent(folder) if paths.name(folder) in UNIT_DIRS else folder


def source_split_of(path: str, root: str) -> str | None:
    for part in paths.relative(path, root).split("/")[:-1]:
        split = canonical_split(part)
        if split:
            return split
    return None


def find_data_yaml(unit: str, root: str, exists: Callable[[str], bool] = io_utils.exists) -> str | None:
    """The nearest data.yaml in ``unit`` or its ancestors up to ``root``."""
    folder = unit
    while True:
        for name in yolo.DATA_YAML_NAMES:
            candidate = paths.join(folder, name)
            if exists(candidate):
                return candidate
        if paths.normalise(folder) == paths.normalise(root) or not paths.is_within(folder, root):
            return None
        folder = paths.parent(folder)


def plan_unit(root: str, unit: str, files: Iterable[str], labels: LabelConfig) -> UnitPlan:
    """Tasks for one unit from its file listing (reads only data.yaml, never images)."""
    root, source = paths.normalise(root), source_name(root)
    direct, ignored, yolo_images, label_files, mask_files = _sort_unit_files(unit, files)
    yolo_labels, rejects = _choose_label_files(label_files)
    masks, mask_rejects = _choose_masks(mask_files)
    rejects += mask_rejects + _masks_without_image(unit, masks, yolo_images)
    images, annotations, ignored_direct = _direct_tasks(root, source, direct, labels)
    xmls = [a.path for a in annotations]
    yaml_path = find_data_yaml(unit, root) if (yolo_images or yolo_labels) else None
    if yolo_images and not yolo_labels and yaml_path is None:
        # a folder that merely happens to be called images/: plain images (class folder, VOC or unlabelled)
        for f in (f for group in yolo_images.values() for f in group):
            hint = class_folders.class_from_path(f, root, labels)
            xml_beside = any(paths.parent(x) == paths.parent(f) for x in xmls)
            layout = "voc" if xml_beside else ("folders" if hint else "flat")
            mask = masks.get(paths.stem(f))
            images.append(ImageTask(f, root, source, source_split_of(f, root), layout, hint, mask_path=mask))
        yolo_images = {}
    if yolo_images or yolo_labels:
        yolo_tasks, yolo_rejects = _yolo_tasks(root, source, unit, yaml_path, yolo_images, yolo_labels, labels)
        yolo_tasks = [replace(t, mask_path=masks.get(paths.stem(t.path))) for t in yolo_tasks]
        images += yolo_tasks
        rejects += yolo_rejects
    return UnitPlan(tuple(images), tuple(annotations), tuple(rejects), tuple(ignored + ignored_direct))


def _sort_unit_files(
    unit: str, files: Iterable[str]
) -> tuple[list[str], list[str], dict[str, list[str]], dict[str, list[str]], dict[str, list[str]]]:
    """(files directly in the unit's layout, ignored, YOLO images by stem, YOLO label files by stem,
    mask files by stem)."""
    direct, ignored = [], []
    masks: dict[str, list[str]] = defaultdict(list)  # every mask file: a second one per stem is refused, not an image
    yolo_images: dict[str, list[str]] = defaultdict(list)  # a.jpg and a.png both take labels/a.txt, as in Ultralytics
    label_files: dict[str, list[str]] = defaultdict(list)
    for f in sorted(files):
        folder = paths.name(paths.parent(f))
        if paths.parent(f) != unit and folder == "images" and paths.is_image(f):
            yolo_images[paths.stem(f)].append(f)
        elif paths.parent(f) != unit and folder == "labels" and paths.name(f) == "classes.txt":
            ignored.append(f)  # labelImg's YOLO class list, not an image's labels
        elif paths.parent(f) != unit and folder == "labels" and paths.ext(f) == ".txt":
            label_files[paths.stem(f)].append(f)
        elif paths.parent(f) != unit and folder == MASK_DIR and paths.is_image(f):
            masks[paths.stem(f)].append(f)
        else:
            direct.append(f)
    return direct, ignored, yolo_images, label_files, masks


def _masks_without_image(unit: str, masks: dict[str, str], yolo_images: dict[str, list[str]]) -> list[Reject]:
    return [
        Reject(mask, ANNOTATION, "missing_image", f"{mask}: no image named {stem}.* in {unit}/images")
        for stem, mask in masks.items()
        if stem not in yolo_images
    ]


def _choose_masks(mask_files: dict[str, list[str]]) -> tuple[dict[str, str], list[Reject]]:
    """One mask per stem: ``masks/a.png`` (the layout's name) before ``a.PNG``, ``a.bmp``..., then by
    name; any other claiming the same image is refused naming the one used. It used to fall through
    to the unit's own files and be rejected as an unlabelled image."""
    chosen_by_stem: dict[str, str] = {}
    rejects = []
    for stem, candidates in mask_files.items():
        chosen, *others = sorted(candidates, key=lambda f: (not f.endswith(".png"), f))
        chosen_by_stem[stem] = chosen
        rejects += [
            Reject(
                o,
                ANNOTATION,
                "duplicate_annotation",
                f"{o}: {chosen} is a mask of the same image ({stem}.*); two masks cannot label one image, "
                f"{chosen} is used instead",
            )
            for o in others
        ]
    return chosen_by_stem, rejects


def _choose_label_files(label_files: dict[str, list[str]]) -> tuple[dict[str, str], list[Reject]]:
    """a.txt wins over a.TXT; the other is refused, never silently ignored."""
    chosen_by_stem: dict[str, str] = {}
    rejects = []
    for stem, candidates in label_files.items():
        chosen, *others = sorted(candidates, key=lambda f: (not f.endswith(".txt"), f))
        chosen_by_stem[stem] = chosen
        rejects += [
            Reject(o, ANNOTATION, "duplicate_annotation", f"{o}: {chosen} labels the same images; it is used instead")
            for o in others
        ]
    return chosen_by_stem, rejects


def _direct_tasks(
    root: str, source: str, direct: list[str], labels: LabelConfig
) -> tuple[list[ImageTask], list[AnnotationTask], list[str]]:
    """Images and VOC XML files directly in a folder (VOC, class folders or flat), and the rest ignored."""
    direct_images = {paths.stem(f): f for f in direct if paths.is_image(f)}
    xmls = [f for f in direct if paths.ext(f) in ANNOTATION_EXTS]
    annotations = [
        AnnotationTask(x, root, source, source_split_of(x, root), direct_images.get(paths.stem(x))) for x in xmls
    ]
    images, ignored = [], []
    for f in direct:
        if paths.is_image(f):
            hint = class_folders.class_from_path(f, root, labels)
            layout = "voc" if xmls else ("folders" if hint else "flat")
            images.append(ImageTask(f, root, source, source_split_of(f, root), layout, class_hint=hint))
        elif paths.ext(f) not in ANNOTATION_EXTS:
            ignored.append(f)
    return images, annotations, ignored


def _yolo_tasks(
    root: str,
    source: str,
    unit: str,
    yaml_path: str | None,
    yolo_images: dict[str, list[str]],
    yolo_labels: dict[str, str],
    labels: LabelConfig,
) -> tuple[list[ImageTask], list[Reject]]:
    """A YOLO unit's images with their label file and class names (or the data.yaml error they carry)."""
    names, error = None, None
    if yaml_path is None:
        error = ("missing_data_yaml", unit, f"no data.yaml in {unit} or above it: YOLO class ids cannot be named")
    else:
        try:
            names = yolo.read_data_yaml(yaml_path).names
        except AnnotationError as exc:
            error = (exc.reason, exc.path, str(exc))
    images = []
    for stem, group in yolo_images.items():
        for f in group:
            hint = class_folders.class_from_path(f, root, labels)
            label = yolo_labels.get(stem)
            images.append(ImageTask(f, root, source, source_split_of(f, root), "yolo", hint, label, names, error))
    rejects = [
        Reject(label, ANNOTATION, "missing_image", f"{label}: no image named {stem}.* in {unit}/images")
        for stem, label in yolo_labels.items()
        if stem not in yolo_images
    ]
    return images, rejects


# ---------------------------------------------------------------- annotations


def parse_annotation(
    task: AnnotationTask,
    read: Callable[[str], bytes] = read_annotation,
    exists: Callable[[str], bool] = io_utils.exists,
) -> tuple[str | None, ParsedAnnotation]:
    """(image path it claims, parsed or refused annotation); the path is None when no image can be named."""
    try:
        annotation = voc.parse_voc(read(task.path), task.path)
        image = voc.resolve_image_path(annotation, task.root)
    except AnnotationError as exc:
        return task.default_image, ParsedAnnotation(task.path, error=exc.to_reject())
    except OSError as exc:
        reason = io_utils.read_error_reason(exc)
        return task.default_image, ParsedAnnotation(
            task.path, error=Reject(task.path, ANNOTATION, reason, f"{task.path}: cannot be read ({exc})")
        )
    if exists(image):
        return image, ParsedAnnotation(task.path, annotation)
    for folder in VOC_IMAGE_FOLDERS:  # VOC devkit / Kaggle layouts: Annotations/ beside JPEGImages/ or images/
        candidate = paths.join(paths.parent(paths.parent(task.path)), folder, paths.name(image))
        if paths.is_within(candidate, task.root) and exists(candidate):
            return candidate, ParsedAnnotation(task.path, annotation)
    if task.default_image is not None:
        log.info(
            "%s: <filename> %r does not exist; using %s beside the XML",
            task.path,
            annotation.filename,
            task.default_image,
        )
        note = NOTE_FILENAME_FALLBACK
        return task.default_image, ParsedAnnotation(task.path, annotation, note=note)
    return None, ParsedAnnotation(
        task.path,
        error=Reject(task.path, ANNOTATION, "missing_image", f"{task.path}: its image {image} does not exist"),
    )


def read_json_annotation(path: str) -> bytes:
    """A JSON annotation's bytes; COCO files hold a whole export, so their cap is larger."""
    return io_utils.read_bytes(path, io_utils.MAX_COCO_BYTES)


def parse_annotations(
    task: AnnotationTask,
    read: Callable[[str], bytes] = read_annotation,
    exists: Callable[[str], bool] = io_utils.exists,
    read_json: Callable[[str], bytes] = read_json_annotation,
) -> list[tuple[str | None, ParsedAnnotation]]:
    """Every (image it claims, parsed or refused annotation) of one annotation file: a VOC XML or a
    LabelMe JSON claims one image, a COCO JSON each image it lists."""
    if paths.ext(task.path) != ".json":
        return [parse_annotation(task, read, exists)]
    try:
        doc = safe_json.loads(read_json(task.path))
    except OSError as exc:
        reason = io_utils.read_error_reason(exc)
        return [
            (
                task.default_image,
                ParsedAnnotation(
                    task.path, error=Reject(task.path, ANNOTATION, reason, f"{task.path}: cannot be read ({exc})")
                ),
            )
        ]
    except safe_json.JsonError as exc:  # not UTF-8 JSON, or a number no float holds (10**400, 1e999, NaN)
        detail = f"{task.path}: {exc}"
        return [
            (
                task.default_image,
                ParsedAnnotation(task.path, error=Reject(task.path, ANNOTATION, "malformed_json", detail)),
            )
        ]
    try:
        if coco.is_coco(doc):
            return _coco_claims(coco.parse_coco(doc, task.path), exists)
        if labelme.is_labelme(doc):
            return [_labelme_claim(task, labelme.parse_labelme(doc, task.path), exists)]
    except AnnotationError as exc:
        return [(_refused_labelme_image(task, doc, exists), ParsedAnnotation(task.path, error=exc.to_reject()))]
    detail = f"{task.path}: a JSON file that is neither LabelMe (shapes, imagePath) nor COCO (images, annotations)"
    return [(None, ParsedAnnotation(task.path, error=Reject(task.path, ANNOTATION, "unrecognised_json", detail)))]


def _refused_labelme_image(task: AnnotationTask, doc: object, exists: Callable[[str], bool]) -> str | None:
    """The image a refused LabelMe file names (``labelme/a.json`` -> ``images/a.jpg``) when it exists,
    else the same-stem image beside it: that image is refused with it, never labelled by another
    JSON that also claims it."""
    image = doc.get("imagePath") if labelme.is_labelme(doc) else None
    if isinstance(image, str) and image.strip():
        path = labelme.resolve_image_path(task.path, image)
        if exists(path):
            return path
    return task.default_image


def _labelme_claim(
    task: AnnotationTask, annotation: labelme.LabelMeAnnotation, exists: Callable[[str], bool]
) -> tuple[str | None, ParsedAnnotation]:
    if exists(annotation.image_path):
        return annotation.image_path, ParsedAnnotation(task.path, annotation)
    if task.default_image is not None:
        log.info(
            "%s: imagePath %s does not exist; using %s beside the JSON",
            task.path,
            annotation.image_path,
            task.default_image,
        )
        return task.default_image, ParsedAnnotation(task.path, annotation, note=NOTE_FILENAME_FALLBACK)
    detail = f"{task.path}: its image {annotation.image_path} does not exist"
    return None, ParsedAnnotation(task.path, error=Reject(task.path, ANNOTATION, "missing_image", detail))


def _coco_claims(found: coco.CocoFile, exists: Callable[[str], bool]) -> list[tuple[str | None, ParsedAnnotation]]:
    """One claim per image entry, each carrying only that image's slice of the file; a row for
    every entry that cannot be used (missing image, an id or a photo listed twice, an annotation
    of no image)."""
    resolved = [(image, coco.resolve(found.path, image.file_name, exists)) for image in found.images]
    ambiguous = _ambiguous_entries(found, resolved)
    claims: list[tuple[str | None, ParsedAnnotation]] = []
    for n, (image, path) in enumerate(resolved):
        if n in ambiguous:
            claims.append((path, _refused(found.path, *ambiguous[n])))
        elif path is None:
            where = coco.candidates(found.path, image.file_name)[0]
            detail = (
                f"{found.path}: image {image.file_name!r} (id {image.id}) is not at {where} or in an images/ folder"
            )
            claims.append((None, _refused(found.path, "missing_image", detail)))
        else:
            claims.append((path, ParsedAnnotation(found.path, CocoEntry(found.for_image(image), image))))
    for a in found.orphans:
        detail = (
            f"{found.path}: annotation {short_repr(a.get('id', '?'))} names image_id {a['image_id']}, "
            "which no image entry has; it is not used"
        )
        claims.append((None, _refused(found.path, "unknown_image_id", detail)))
    return claims


def _ambiguous_entries(
    found: coco.CocoFile, resolved: list[tuple[coco.CocoImage, str | None]]
) -> dict[int, tuple[str, str]]:
    """(reason, detail) of each entry (by position) whose annotations cannot be told apart from
    another's: an image id listed twice, or two entries naming one photo (the first used to label
    it, the other's annotations were lost)."""
    names: dict[int, list[str]] = defaultdict(list)  # a duplicated id -> the file names listed under it
    ids: dict[str, list[int]] = defaultdict(list)  # a photo -> the ids of the entries naming it
    for image, path in resolved:
        if image.id in found.duplicate_ids:
            names[image.id].append(image.file_name)
        if path is not None:
            ids[path].append(image.id)
    out = {}
    for n, (image, path) in enumerate(resolved):
        if image.id in found.duplicate_ids:
            detail = (
                f"{found.path}: image id {image.id} is listed {len(names[image.id])} times "
                f"({short_repr(names[image.id])}); its annotations cannot be told apart, so no entry with "
                f"that id is used ({image.file_name!r})"
            )
            out[n] = ("duplicate_image_id", detail)
        elif path is not None and len(ids[path]) > 1:
            detail = (
                f"{found.path}: {len(ids[path])} image entries (ids {short_repr(ids[path])}) name {path}; "
                f"which holds its annotations cannot be told, so none is used (id {image.id})"
            )
            out[n] = ("duplicate_file_name", detail)
    return out


def _refused(annotation_path: str, reason: str, detail: str) -> ParsedAnnotation:
    return ParsedAnnotation(annotation_path, error=Reject(annotation_path, ANNOTATION, reason, detail))


# ---------------------------------------------------------------- labelling


def _image_reject(task: ImageTask, reason: str, detail: str) -> Reject:
    return Reject(task.path, ANNOTATION if reason not in ("unlabelled",) else DISCOVER, reason, detail)


def label_image(
    task: ImageTask,
    annotations: Iterable[ParsedAnnotation],
    labels: LabelConfig,
    missing_annotation_is_negative: bool = False,
    data: bytes | None = None,
    read: Callable[[str], bytes] = io_utils.read_bytes,
) -> Labelling:
    """Decide what an image is labelled as: VOC XML, else YOLO label file, else class folder.

    ``data`` (the image bytes) is needed only for YOLO, whose boxes are relative to the image size,
    and for COCO RLE, which must be the image's size. Annotation problems reject the image with the
    annotation's reason, so nothing is half-labelled. Of several annotations claiming the image, the
    one named after it wins (``_claim_rank``); when that one is refused, so is the image.
    """
    annotations = sorted(annotations, key=lambda a: _claim_rank(task.path, a.annotation_path))
    good = [a for a in annotations if a.annotation is not None]
    bad = [a for a in annotations if a.error is not None]
    if good and not (bad and _owns(task, bad[0]) and not _owns(task, good[0])):
        return _label_annotated(task, good, labels, lambda: data if data is not None else read(task.path))
    if bad:
        err = bad[0].error
        unused = tuple(_duplicate_claim(task, o, bad[0], "was refused") for o in good)
        return Labelling(
            None, _image_reject(task, err.reason, f"{task.path}: its annotation was refused: {err.detail}"), unused
        )
    if task.label_path is not None:
        return _label_yolo(task, labels, data, read)
    if task.mask_path is not None:
        labelled = LabelledImage(
            task.path,
            None,
            None,
            task.mask_path,
            task.source,
            task.source_split,
            regions=True,
            mask_path=task.mask_path,
        )
        return Labelling(labelled)
    return _label_without_annotation(task, missing_annotation_is_negative)


def _claim_rank(image: str, annotation_path: str) -> tuple[bool, bool, str]:
    """The order in which annotations claiming ``image`` are taken: the one named after it (same
    stem: ``a.xml`` beside ``a.jpg``, CCSC's ``labelme/a.json`` for ``images/a.jpg``) first, beside it
    before elsewhere, then by path. A JSON elsewhere naming the image through ``../`` never
    overrides the image's own, however its path sorts."""
    same_stem = paths.stem(annotation_path) == paths.stem(image)
    return (not same_stem, paths.parent(annotation_path) != paths.parent(image), annotation_path)


def _owns(task: ImageTask, parsed: ParsedAnnotation) -> bool:
    return paths.stem(parsed.annotation_path) == paths.stem(task.path)


def _duplicate_claim(task: ImageTask, other: ParsedAnnotation, chosen: ParsedAnnotation, what: str) -> Reject:
    detail = (
        f"{other.annotation_path} also claims {task.path}, whose annotation {chosen.annotation_path} {what} "
        "(an image's own annotation, named after it, wins); it is not used"
    )
    return Reject(other.annotation_path, ANNOTATION, "duplicate_annotation", detail)


def _to_labelled(
    task: ImageTask, parsed: ParsedAnnotation, labels: LabelConfig, image_bytes: Callable[[], bytes]
) -> LabelledImage:
    """An annotation of any kind as the image's labels; a mask beside the image gives its pixels."""
    a = parsed.annotation
    if isinstance(a, voc.VocAnnotation):
        labelled = voc.to_labelled(a, task.path, labels, task.source, task.source_split)
    elif isinstance(a, labelme.LabelMeAnnotation):
        labelled = replace(labelme.to_labelled(a, labels, task.source, task.source_split), image_path=task.path)
    else:
        labelled = _coco_labelled(task, a, labels, image_bytes)
    if task.mask_path is not None:
        labelled = replace(labelled, regions=True, mask_path=task.mask_path)
    return labelled


def _coco_labelled(
    task: ImageTask, entry: CocoEntry, labels: LabelConfig, image_bytes: Callable[[], bytes]
) -> LabelledImage:
    """A COCO entry's boxes; each RLE is checked against the image's own size (its header) before
    anything decodes it: one of another size is refused, never decoded at its declared size."""
    found, image = entry.coco, entry.image
    boxes = coco.to_boxes(found, found.annotations.get(image.id, ()), labels, image.size)
    if any(b.rle is not None for b in boxes):
        drawn = _drawn_size(image_bytes, task.path, image.size)
        if drawn is not None:
            coco.check_rle_sizes(boxes, drawn, task.path, found.path)
    return coco.to_labelled(task.path, found.path, boxes, image.size, task.source, task.source_split)


def _drawn_size(
    image_bytes: Callable[[], bytes], path: str, declared: tuple[int, int] | None
) -> tuple[int, int] | None:
    """The size validation draws regions at (``validate._fit_declared_size``): the raw pixels', or
    the turned image's when the declared size is that; None when the image cannot be read (it is
    refused as such when validated)."""
    from corrosion.imaging import images

    try:
        info = images.probe(image_bytes(), path, max_pixels=2**62)  # the header alone: any size is read
    except (images.ImageError, OSError):
        return None
    turned = (info.width, info.height)
    if declared is not None and declared != info.raw_size and images.swaps_sides(info.orientation):
        return turned if declared == turned else info.raw_size
    return info.raw_size


def _label_annotated(
    task: ImageTask, good: list[ParsedAnnotation], labels: LabelConfig, image_bytes: Callable[[], bytes]
) -> Labelling:
    """The first annotation (``_claim_rank``) labels the image; any other claiming it is refused."""
    chosen, others = good[0], good[1:]
    extra = [_duplicate_claim(task, o, chosen, "is used") for o in others]
    try:
        labelled = _to_labelled(task, chosen, labels, image_bytes)
    except AnnotationError as exc:
        row = exc.to_reject()
        return Labelling(
            None,
            _image_reject(task, exc.reason, f"{task.path}: its annotation was refused: {exc}"),
            tuple(extra + [row]),
        )
    notes = (chosen.note,) if chosen.note else ()
    return _with_hint(task, _replace_notes(labelled, notes), tuple(extra))


def _label_without_annotation(task: ImageTask, missing_annotation_is_negative: bool) -> Labelling:
    """No annotation file: the class folder, a configured negative, or a reject saying what is missing."""
    if task.layout == "yolo" and task.yolo_error is None and not missing_annotation_is_negative:
        return Labelling(
            None,
            _image_reject(task, "missing_label_file", f"{task.path}: no label file {yolo.label_path_for(task.path)}"),
        )
    if task.class_hint is not None:
        return Labelling(LabelledImage(task.path, task.class_hint, None, None, task.source, task.source_split))
    if missing_annotation_is_negative and task.layout in ("voc", "yolo"):
        return Labelling(
            LabelledImage(task.path, NO_RUST, (), None, task.source, task.source_split, notes=(NOTE_NEGATIVE,))
        )
    if task.yolo_error is not None:
        reason, _, detail = task.yolo_error
        return Labelling(None, _image_reject(task, reason, f"{task.path}: its class names are unusable: {detail}"))
    return Labelling(
        None,
        _image_reject(
            task,
            "unlabelled",
            f"{task.path}: no annotation (VOC XML / YOLO label) and no class folder (e.g. rust/, norust/) above it",
        ),
    )


def _replace_notes(labelled: LabelledImage, notes: tuple[str, ...]) -> LabelledImage:
    return replace(labelled, notes=labelled.notes + notes) if notes else labelled


def _with_hint(task: ImageTask, labelled: LabelledImage, extra: tuple[Reject, ...]) -> Labelling:
    """An annotated image inside a class folder must agree with it (a rust box in norust/ is a conflict)."""
    if task.class_hint is not None and labelled.boxes and task.class_hint != labelled.image_class:
        detail = f"{task.path}: annotation {labelled.annotation_path} has rust boxes but the image sits in a {task.class_hint} folder"
        return Labelling(None, Reject(task.path, ANNOTATION, "label_conflict", detail), extra)
    if task.class_hint is not None and not labelled.boxes:
        # an annotation without boxes inside a rust/ folder: the folder says rust, boxes unknown
        boxes = labelled.boxes if task.class_hint == labelled.image_class else None
        labelled = replace(labelled, image_class=task.class_hint, boxes=boxes)
    return Labelling(labelled, None, extra)


def _label_yolo(task: ImageTask, labels: LabelConfig, data: bytes | None, read: Callable[[str], bytes]) -> Labelling:
    from corrosion.imaging import images

    if task.yolo_error is not None:
        reason, _, detail = task.yolo_error
        label_row = Reject(
            task.label_path, ANNOTATION, reason, f"{task.label_path}: its class names are unusable: {detail}"
        )
        return Labelling(
            None, _image_reject(task, reason, f"{task.path}: its class names are unusable: {detail}"), (label_row,)
        )
    try:
        text = read_annotation(task.label_path).decode("utf-8-sig")
        boxes = yolo.parse_labels(text, task.label_path, task.yolo_names)
    except AnnotationError as exc:
        return Labelling(
            None, _image_reject(task, exc.reason, f"{task.path}: its label file was refused: {exc}"), (exc.to_reject(),)
        )
    except (OSError, UnicodeDecodeError) as exc:
        reason = io_utils.read_error_reason(exc)
        row = Reject(task.label_path, ANNOTATION, reason, f"{task.label_path}: cannot be read ({exc})")
        return Labelling(None, _image_reject(task, reason, row.detail), (row,))
    try:
        info = images.probe(data if data is not None else read(task.path), task.path)
    except images.ImageError as exc:
        return Labelling(None, Reject(task.path, "image", exc.reason, str(exc)))
    raw = info.raw_size
    try:
        labelled = yolo.to_labelled(task.path, task.label_path, boxes, raw, labels, task.source, task.source_split)
    except AnnotationError as exc:
        return Labelling(
            None, _image_reject(task, exc.reason, f"{task.path}: its label file was refused: {exc}"), (exc.to_reject(),)
        )
    return _with_hint(task, labelled, ())


# ---------------------------------------------------------------- plain-Python scan


def scan(
    root: str, labels: LabelConfig, missing_annotation_is_negative: bool = False, exclude: Iterable[str] = ()
) -> ScanResult:
    """Every labelled image under ``root`` (local or gs://) and every input that could not be used.

    The same steps as the dataset pipeline's discovery, without decoding images (only YOLO images
    are probed for their size), so a model can be evaluated on a raw labelled folder. Files under
    ``exclude`` (the caller's own output folder) are not inputs.
    """
    root = paths.normalise(root)
    result = ScanResult()
    units: dict[str, list[str]] = defaultdict(list)
    found, result.rejects = list_inputs(root, exclude)
    for f in found:
        units[unit_of(f)].append(f)
    tasks: list[ImageTask] = []
    claims: dict[str, list[ParsedAnnotation]] = defaultdict(list)
    for unit, files in sorted(units.items()):
        plan = plan_unit(root, unit, files, labels)
        tasks += plan.images
        result.rejects += plan.rejects
        result.ignored += plan.ignored
        for a in plan.annotations:
            for image, parsed in parse_annotations(a):
                if parsed.error is not None:
                    result.rejects.append(parsed.error)
                if image is not None:
                    claims[image].append(parsed)
    known = {t.path for t in tasks}
    for image, parsed in claims.items():
        if image not in known:  # an XML naming an image file the listing does not hold as an image
            for p in parsed:
                if p.error is None:
                    result.rejects.append(
                        Reject(p.annotation_path, ANNOTATION, "missing_image", f"{image} is not an image file")
                    )
    for task in tasks:
        labelling = label_image(task, claims.get(task.path, ()), labels, missing_annotation_is_negative)
        result.rejects += labelling.rejects
        if labelling.labelled is not None:
            result.images.append(labelling.labelled)
        else:
            result.rejects.append(labelling.image_reject)
    log.info(
        "scanned %s: %d labelled images, %d rejects, %d other files ignored",
        root,
        len(result.images),
        len(result.rejects),
        len(result.ignored),
    )
    return result


__all__ = ["Reject", "ScanResult", "scan", "list_files", "plan_unit", "parse_annotations", "label_image"]
