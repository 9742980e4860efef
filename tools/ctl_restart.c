/* ctl_restart.c - not written yet. */
typedef int mailonce_placeholder;
