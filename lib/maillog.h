/* maillog.h - not written yet. */
