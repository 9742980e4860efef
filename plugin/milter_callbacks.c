/* not written yet */
typedef int mailonce_placeholder;
