DESCRIPTION = "a view of another size is cut with the student's cutmix box unscaled"
FILE = 'kdzoo/models/replay_preprocessor.py'
FIND = '''        sy, sx = inputs.shape[-2] / shape[0], inputs.shape[-1] / shape[1]
'''
REPLACE = '''        sy, sx = 1.0, 1.0
'''
TESTS = ['tests/test_views.py']
SELECT = 'mix'
