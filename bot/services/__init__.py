"""Support services: the directory, matching, needs assessments and warm referrals.

The pure logic needs no database: `schema` validates directory entries, `hours` answers
"open now?" in London time, `places` maps borough names and postcode districts to
boroughs, `matching` ranks services for a person and `render` writes the SMS-sized
results. The database side (the stored directory, needs and referrals) builds on them.
"""
