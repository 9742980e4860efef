/* template.h - not written yet. */
