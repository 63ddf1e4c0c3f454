DESCRIPTION = "ViTKD's generation block sees the unmasked student tokens (no mask token)"
FILE = 'kdzoo/losses/vitkd.py'
FIND = '''        x = torch.where(mask, self.mask_token.float(), x)
'''
REPLACE = '''        x = x + 0 * self.mask_token.float()
'''
TESTS = ['tests/test_zoo_vit_losses.py']
SELECT = 'vitkd and (reference or mask)'
