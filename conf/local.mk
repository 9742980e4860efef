# conf/ - example configuration, Postfix snippets and systemd units.
EXTRA_DIST += conf/mailonce.conf conf/postfix-main.cf conf/mailonce-milter.service
EXTRA_DIST += conf/mailonce-restart.service
