DESCRIPTION = "CRD's bank update under DDP uses only the rank's own samples (not all-gathered)"
FILE = 'kdzoo/losses/crd.py'
FIND = '''        rows = all_gather_rows(torch.cat([f_s, f_t], dim=1))
        indices = all_gather_rows(indices)
'''
REPLACE = '''        rows = torch.cat([f_s, f_t], dim=1)
'''
TESTS = ['tests/test_zoo_crd_mgd.py']
SELECT = 'two_processes'
