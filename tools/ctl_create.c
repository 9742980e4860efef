/* ctl_create.c - not written yet. */
typedef int mailonce_placeholder;
