/* ctl_keys.c - not written yet. */
typedef int mailonce_placeholder;
