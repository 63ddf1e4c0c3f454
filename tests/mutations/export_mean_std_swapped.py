DESCRIPTION = "the timm export's pretrained_cfg (printed and checked) has mean and std swapped"
FILE = 'kdzoo/apis/export.py'
FIND = '''        out.update(mean=tuple(float(f'{m / 255:.10g}') for m in data['mean']),
                   std=tuple(float(f'{s / 255:.10g}') for s in data['std']))
'''
REPLACE = '''        out.update(mean=tuple(float(f'{s / 255:.10g}') for s in data['std']),
                   std=tuple(float(f'{m / 255:.10g}') for m in data['mean']))
'''
TESTS = ['tests/test_export.py']
SELECT = 'timm_preprocessing_from_raw_pixels'
