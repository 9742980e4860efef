/* ctl_db.c - not written yet. */
typedef int mailonce_placeholder;
