/* smtp.h - not written yet. */
