/* ctl_send.c - not written yet. */
typedef int mailonce_placeholder;
