"""How a synthetic set looks to the teacher that made it: whether the teacher still
assigns each image to its target class after the 8-bit export, and how spread out the
images of a class are in the teacher's embedding (DF-DearKD, Chen et al. CVPR 2022,
section 4: the intra-divergence loss is meant to raise that spread without crossing the
class boundaries).

    python tools/analysis/synthetic_set.py CONFIG [--dirs DIR ...] [--per-class N]
        [--out FILE.json] [--batch-size 250]

CONFIG is a DF-DearKD config: its teacher, class names, input normalisation and
embedding layer (``synthesis.synthesizer.feature_layer``) are used; ``--dirs`` defaults
to its ``synthesis.out``. Any class-folder image set can be measured the same way (e.g.
``data/cifar10/test`` as a reference of real images, with ``--per-class 100``).

Per set: teacher top-1 on the target labels, the mean probability of the target, and per
class the mean pairwise distance of the embeddings (also of the L2-normalised ones, which
a change of the embedding's scale does not move), the mean distance of each image to
its nearest neighbour of the same class and to its nearest image of another class
(averaged over classes), the percentage of images whose nearest neighbour is of their
class; for a set with a manifest, the mean final BatchNorm-statistics loss (R_BN) of its
images.
"""
import glob
import json
import os.path as osp

import numpy as np
import torch

# The teacher's input normalisation follows the rule of the synthesis that made the set.
from kdzoo.apis import input_normalisation

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')


def parse_args(argv=None):
    from kdzoo.apis.tool_args import add_config_argument, tool_parser
    parser = tool_parser(__doc__.split('\n\n')[0], (
        'python tools/analysis/synthetic_set.py df_dearkd_micro_cifar10',
        'python tools/analysis/synthetic_set.py df_dearkd_micro_cifar10 --dirs data/a data/b '
        'data/cifar10/test --per-class 100'))
    add_config_argument(parser)
    parser.add_argument('--dirs', nargs='+', help='class-folder image sets; default: '
                        'the config\'s synthesis.out')
    parser.add_argument('--per-class', type=int, help='at most this many images per class '
                        '(the first in file order)')
    parser.add_argument('--batch-size', type=int, default=250)
    parser.add_argument('--out', help='write the measures as JSON')
    parser.add_argument('--device', default='cpu')
    return parser.parse_args(argv)


def list_images(root, classes, per_class=None):
    """[(path, label)] of a class-folder set whose folders are named after ``classes``."""
    if not osp.isdir(root):
        raise SystemExit(f'image folder {root!r} does not exist')
    missing = [c for c in classes if not osp.isdir(osp.join(root, c))]
    if missing:
        raise SystemExit(f'{root!r} has no folder for the classes {missing}; expected one '
                         f'folder per class of {list(classes)}')
    items = []
    for label, name in enumerate(classes):
        files = sorted(p for p in glob.glob(osp.join(root, name, '*'))
                       if p.lower().endswith(IMAGE_SUFFIXES))
        if not files:
            raise SystemExit(f'no images in {osp.join(root, name)!r}')
        items += [(p, label) for p in files[:per_class]]
    return items


def load_batch(items, mean, std, device):
    from PIL import Image
    arrays = [np.asarray(Image.open(p).convert('RGB'), dtype=np.float32) for p, _ in items]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(device)
    return (x - mean) / std


@torch.no_grad()
def embed(net, layer, items, mean, std, batch_size, device):
    """Logits and embeddings (the input of ``layer``) of every image."""
    captured = []
    handle = layer.register_forward_pre_hook(
        lambda module, args: captured.append(args[0].flatten(1).float().cpu()))
    logits = []
    try:
        for start in range(0, len(items), batch_size):
            batch = load_batch(items[start:start + batch_size], mean, std, device)
            logits.append(net(batch).float().cpu())
    finally:
        handle.remove()
    return torch.cat(logits), torch.cat(captured)


def spread(features, labels):
    """Per-class means of: pairwise distance (raw, and of the L2-normalised embeddings,
    which no change of the embedding's scale moves), nearest same-class and nearest
    other-class distance; then averaged over classes. ``nn_same_class``: the percentage
    of images whose nearest other image is of their class."""
    dist = torch.cdist(features, features)
    unit = torch.nn.functional.normalize(features, dim=1)
    unit_dist = torch.cdist(unit, unit)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    nearest = dist.masked_fill(eye, float('inf')).argmin(dim=1)
    pairwise, pairwise_unit, nearest_same, nearest_other = [], [], [], []
    for c in labels.unique():
        rows = labels == c
        if rows.sum() < 2:
            continue
        n = int(rows.sum())
        pairwise.append((dist[rows][:, rows].sum() / (n * (n - 1))).item())
        pairwise_unit.append((unit_dist[rows][:, rows].sum() / (n * (n - 1))).item())
        within = dist[rows].masked_fill(~same[rows] | eye[rows], float('inf'))
        nearest_same.append(within.min(dim=1).values.mean().item())
        if (~same[rows]).any():
            other = dist[rows].masked_fill(same[rows], float('inf'))
            nearest_other.append(other.min(dim=1).values.mean().item())
    return dict(pairwise=float(np.mean(pairwise)),
                pairwise_normalized=float(np.mean(pairwise_unit)),
                nearest_same=float(np.mean(nearest_same)),
                nearest_other=float(np.mean(nearest_other)) if nearest_other else None,
                nn_same_class=100.0 * (labels[nearest] == labels).float().mean().item())


def manifest_bn(root):
    """Mean final BatchNorm-statistics loss of a synthetic set, from the manifest
    tools/synthesize.py writes; None for a folder without one (real images)."""
    path = osp.join(root, 'manifest.json')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return float(np.mean([entry['bn'] for entry in json.load(f)['images']]))


def measure(net, layer, items, mean, std, batch_size, device, root=None):
    labels = torch.tensor([label for _, label in items])
    logits, features = embed(net, layer, items, mean, std, batch_size, device)
    probs = logits.softmax(dim=1)
    return dict(images=len(items), bn=manifest_bn(root) if root else None,
                teacher_top1=100.0 * (probs.argmax(dim=1) == labels).float().mean().item(),
                target_prob=probs.gather(1, labels[:, None]).mean().item(),
                **spread(features, labels))


def main(argv=None):
    args = parse_args(argv)
    import kdzoo  # noqa: F401  (compatibility fixes, registries)
    from mmengine.config import Config

    from kdzoo.registry import MODELS

    if not osp.isfile(args.config):
        raise SystemExit(f'config file {args.config!r} does not exist')
    if args.per_class is not None and args.per_class < 2:
        raise SystemExit(f'--per-class must be >= 2 (pairs are measured), got {args.per_class}')
    if args.batch_size < 1:
        raise SystemExit(f'--batch-size must be >= 1, got {args.batch_size}')
    cfg = Config.fromfile(args.config)
    syn = cfg.get('synthesis')
    if syn is None:
        raise SystemExit(f'{args.config} has no synthesis section (a DF-DearKD config)')
    dirs = args.dirs or [syn['out']]
    classes = list(syn.get('classes') or cfg.get('classes') or [])
    if not classes:
        raise SystemExit('the config names no classes (synthesis.classes or classes)')
    sets = {root: list_images(root, classes, args.per_class) for root in dirs}
    synth = syn['synthesizer']
    teacher_cfg = syn.get('teacher') or cfg.model.teacher
    mean, std = input_normalisation(cfg, teacher_cfg, synth)
    teacher = MODELS.build(teacher_cfg).to(args.device).eval()
    net = teacher.model
    layer_name = synth.get('feature_layer') or 'fc'
    layer = teacher.layer(layer_name)
    mean = torch.tensor(mean, device=args.device).view(1, -1, 1, 1)
    std = torch.tensor(std, device=args.device).view(1, -1, 1, 1)

    results = {}
    for root, items in sets.items():
        results[root] = measure(net, layer, items, mean, std, args.batch_size, args.device,
                                root)
    print(f'{"set":<40} {"images":>6} {"teacher top-1":>13} {"p(target)":>9} '
          f'{"pairwise":>8} {"pw unit":>7} {"nn same":>8} {"nn other":>8} '
          f'{"1-NN same %":>11} {"R_BN":>7}')
    for root, r in results.items():
        other = f'{r["nearest_other"]:8.3f}' if r['nearest_other'] is not None else '       -'
        bn = f'{r["bn"]:7.3f}' if r['bn'] is not None else '      -'
        print(f'{root:<40} {r["images"]:>6} {r["teacher_top1"]:>13.2f} '
              f'{r["target_prob"]:>9.3f} {r["pairwise"]:>8.3f} '
              f'{r["pairwise_normalized"]:>7.3f} {r["nearest_same"]:>8.3f} {other} '
              f'{r["nn_same_class"]:>11.1f} {bn}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(config=args.config, layer=layer_name, sets=results), f, indent=2)
    return results


if __name__ == '__main__':
    main()
