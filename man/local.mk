# man/ - manual pages, each written with the program it documents.
dist_man_MANS += man/mailonce.conf.5
dist_man_MANS += man/mailonce-milter.8
dist_man_MANS += man/mailoncectl.8
