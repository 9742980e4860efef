/* addr.h - not written yet. */
