/* fields.h - not written yet. */
