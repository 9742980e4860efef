/* ctl_status.c - not written yet. */
typedef int mailonce_placeholder;
