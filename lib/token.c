/* token.c - not written yet. */
typedef int mailonce_placeholder_token;
