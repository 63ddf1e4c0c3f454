DESCRIPTION = 'a scheduled term is left at full weight after its last segment ends'
FILE = 'kdzoo/engine/stage_hook.py'
FIND = '''            out[term] = next((v for v in values if v is not None), 0.0)
'''
REPLACE = '''            out[term] = next((v for v in values if v is not None), 1.0)
'''
TESTS = ['tests/test_resume_exact.py']
SELECT = 'stage'
