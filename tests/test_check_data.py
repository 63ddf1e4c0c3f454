"""tools/check_data.py: every image of a class-folder dataset decoded in a process pool;
the unreadable ones and the empty class folders listed, with a non-zero exit."""
import os
import os.path as osp
import subprocess
import sys

import pytest

from conftest import REPO, load_tool, make_small_copy
from kdzoo.datasets.check import check_image_folder, image_error


@pytest.fixture(scope='module')
def damaged(cifar_tiny, tmp_path_factory):
    """1 train / 1 test image per class; in train/cat a JPEG cut short and a text file
    named .jpg, in test/ an empty class folder and a PNG that is fine."""
    root = make_small_copy(cifar_tiny, str(tmp_path_factory.mktemp('check') / 'data'),
                           n_train=1, n_test=1)
    cat = osp.join(root, 'train', 'cat')
    with open(osp.join(cat, os.listdir(cat)[0]), 'rb') as f:
        data = f.read()
    with open(osp.join(cat, 'cut.jpg'), 'wb') as f:
        f.write(data[:len(data) * 3 // 4])
    with open(osp.join(cat, 'notes.jpg'), 'w') as f:
        f.write('not an image')
    with open(osp.join(cat, 'readme.txt'), 'w') as f:  # not an image file: not checked
        f.write('text')
    os.makedirs(osp.join(root, 'test', 'zebra'))
    from PIL import Image
    Image.new('RGB', (8, 8)).save(osp.join(root, 'test', 'dog', 'extra.png'))
    return root


def test_image_error_decodes_the_whole_file(damaged):
    cat = osp.join(damaged, 'train', 'cat')
    assert image_error(osp.join(damaged, 'test', 'dog', 'extra.png')) is None
    assert 'truncated' in image_error(osp.join(cat, 'cut.jpg'))
    assert image_error(osp.join(cat, 'notes.jpg')).startswith('UnidentifiedImageError')
    assert image_error(osp.join(cat, 'missing.jpg')).startswith('FileNotFoundError')


@pytest.mark.parametrize('workers', [0, 2])
def test_report_lists_bad_images_and_empty_folders(damaged, workers):
    report = check_image_folder(damaged, workers=workers, progress=False)
    cat = osp.join(damaged, 'train', 'cat')
    assert report.num_images == 10 + 2 + 10 + 1
    assert [p for p, _ in report.bad] == [osp.join(cat, 'cut.jpg'), osp.join(cat, 'notes.jpg')]
    assert report.empty == [osp.join(damaged, 'test', 'zebra')]
    assert not report.ok
    one_split = check_image_folder(osp.join(damaged, 'test'), workers=0, progress=False)
    assert (one_split.num_images, one_split.bad) == (11, [])
    assert one_split.empty == report.empty


def test_tool_exits_non_zero_and_names_the_files(damaged):
    result = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'check_data.py'), damaged, '--workers', '2'],
        capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1
    out = result.stdout
    assert out.startswith('23 images checked: 2 cannot be decoded, 1 class folders without '
                          'an image\n')
    assert f"unreadable: {osp.join(damaged, 'train', 'cat', 'cut.jpg')} (OSError: " in out
    assert f"unreadable: {osp.join(damaged, 'train', 'cat', 'notes.jpg')} " in out
    assert f"empty class folder: {osp.join(damaged, 'test', 'zebra')}\n" in out
    assert '23/23' in result.stderr  # the progress bar


def test_tool_on_good_data_and_bad_arguments(cifar_tiny, tmp_path):
    tool = load_tool('check_data')
    report = tool.main([osp.join(cifar_tiny, 'test'), '--workers', '0', '--no-progress'])
    assert report.ok and report.num_images == 100
    with pytest.raises(SystemExit, match=f"error: '{tmp_path / 'nowhere'}' is not a folder"):
        tool.main([str(tmp_path / 'nowhere')])
    (tmp_path / 'flat').mkdir()
    with pytest.raises(SystemExit, match='has no class folders'):
        tool.main([str(tmp_path / 'flat')])
    with pytest.raises(ValueError, match=r'workers must be an integer >= 0 .*got -1'):
        check_image_folder(cifar_tiny, workers=-1)
