"""Case progress: the case store, verification, the agency feed, notifications and the
update-deadline watchdog. The gateway owns all of it; Rasa never sees a case detail."""
