"""Development-only parts of keyhunt: fakes of AWS and Slack over HTTP, and the demo world.

Not in the product's wheel. `aws` (moto plus a LookupEvents emulator), `slack` (a Slack Web
API stand-in), `records` (CloudTrail records we write ourselves) and `demo` (`keyhunt demo`).
"""
