"""When work is due (cron), running due work once under a lease, and the daemon."""
