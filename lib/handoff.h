/* handoff.h - not written yet. */
