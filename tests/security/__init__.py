"""The security suite: hostile input, faults and escapes, tried as an attacker would."""
