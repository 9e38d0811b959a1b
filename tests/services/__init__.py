"""The services directory, matching and results (issue 6); pure logic, no database."""
