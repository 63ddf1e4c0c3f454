DESCRIPTION = ("the Distiller's state dict leaves out the terms' connectors (a resume "
               "re-initialises them)")
FILE = 'kdzoo/models/distiller.py'
FIND = '''    for key in [k for k in state_dict if k.startswith(prefix + 'teacher.')]:
        del state_dict[key]
    return state_dict
'''
REPLACE = '''    for key in [k for k in state_dict if k.startswith((prefix + 'teacher.', prefix + 'terms.'))]:
        del state_dict[key]
    return state_dict
'''
TESTS = ['tests/test_resume_exact.py']
SELECT = 'resumed_model_holds'
