DESCRIPTION = "the student's token grid resized with align_corners=True"
FILE = 'kdzoo/losses/vitkd.py'
FIND = '''        grid = F.interpolate(grid, size=teacher_grid, mode='bilinear', align_corners=False)
'''
REPLACE = '''        grid = F.interpolate(grid, size=teacher_grid, mode='bilinear', align_corners=True)
'''
TESTS = ['tests/test_zoo_vit_losses.py']
SELECT = 'vitkd and reference'
