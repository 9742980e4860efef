# man/ - manual pages, each written with the program it documents.
dist_man_MANS +=
