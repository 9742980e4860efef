/* milter.h - not written yet. */
