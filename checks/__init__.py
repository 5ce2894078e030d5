"""Detection and AWS I/O: parse CloudTrail, classify CreateAccessKey events, hunt across targets."""
