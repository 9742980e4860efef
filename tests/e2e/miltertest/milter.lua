-- milter.lua - drive mailonce-milter over the milter protocol with miltertest.
--
-- run.sh starts the milter and passes, with -D:
--   dir        the directory of this script
--   socket     the milter's socket, e.g. inet:32199@127.0.0.1
--   token1     a valid token for mailing m1 seq 1 and bob@example.org
--   badtoken   the same token with a wrong MAC
--   token2     a valid token for mailing m1 seq 2 and carol@example.org
-- Each case is one SMTP transaction on its own connection. A failed check
-- raises an error naming the case, which makes miltertest exit non-zero.

dofile(dir .. "/common.lua")

-- cases - every case in order
local function cases()
	local open, message, check = M.open, M.message, M.check
	local body = "Hello Bob,\r\nthis is message one.\r\n"
	local plain = {{"From", "sender@example.org"}, {"Subject", "plain"}}
	local tracked = {{"From", "sender@example.org"}, {"Mailonce-Token", token1}}

	-- 1. No token: passed on untouched.
	local conn = open("QPLAIN0001")
	check("untracked reply is continue", message(conn, {"<bob@example.org>"}, plain, body) == SMFIR_CONTINUE)
	check("untracked has no header change", not mt.eom_check(conn, MT_HDRDELETE)
		and not mt.eom_check(conn, MT_HDRADD) and not mt.eom_check(conn, MT_HDRCHANGE))
	check("untracked has no reply text", not mt.eom_check(conn, MT_SMTPREPLY, "550")
		and not mt.eom_check(conn, MT_SMTPREPLY, "451"))
	check("milter asks for header changes", mt.test_action(conn, SMFIF_CHGHDRS))
	check("milter skips HELO", mt.test_option(conn, SMFIP_NOHELO))
	mt.disconnect(conn)

	-- 2. Valid token: accepted and the token header removed.
	conn = open("QFIRST0001")
	check("first handoff reply is continue", message(conn, {"<bob@example.org>"}, tracked, body) == SMFIR_CONTINUE)
	check("first handoff token removed", mt.eom_check(conn, MT_HDRCHANGE, "Mailonce-Token", "")
		or mt.eom_check(conn, MT_HDRDELETE, "Mailonce-Token"))
	mt.disconnect(conn)

	-- 3. The retry of the same message: discarded (DuplicateAction discard).
	conn = open("QRETRY0002")
	check("retry is discarded", message(conn, {"<bob@example.org>"}, tracked, body) == SMFIR_DISCARD)
	mt.disconnect(conn)

	-- 4. A forged MAC: rejected (BadTokenAction reject).
	conn = open("QBADMAC003")
	local forged = {{"From", "sender@example.org"}, {"Mailonce-Token", badtoken}}
	-- NOTE: with miltertest 2.11, mt.eom_check(MT_SMTPREPLY, "550") returned
	-- false even though the milter replied 550, so the code 550 5.7.1 is
	-- checked in the unit test and the action in the milter's log (run.sh).
	check("bad MAC gets a reply code", message(conn, {"<bob@example.org>"}, forged, body) == SMFIR_REPLYCODE)
	mt.disconnect(conn)

	-- 5. A valid token with two envelope recipients: rejected.
	conn = open("QTWORCPT04")
	local second = {{"From", "sender@example.org"}, {"Mailonce-Token", token2}}
	check("two recipients are rejected", message(conn, {"<carol@example.org>", "<dave@example.org>"},
		second, body) == SMFIR_REPLYCODE)
	mt.disconnect(conn)

	-- 6. Two token headers: rejected, even though each one is valid.
	conn = open("QTWOHDRS05")
	local twice = {{"Mailonce-Token", token2}, {"mailonce-token", token2}}
	check("two token headers are rejected", message(conn, {"<carol@example.org>"}, twice, body) == SMFIR_REPLYCODE)
	mt.disconnect(conn)

	-- 7. Two messages on one connection: the second starts clean.
	conn = open("QSAMECON06")
	check("tracked then", message(conn, {"<carol@example.org>"}, second, body) == SMFIR_CONTINUE)
	if mt.mailfrom(conn, "<sender@example.org>") ~= nil then
		error("mailfrom failed")
	end
	check("untracked on the same connection", message(conn, {"<erin@example.org>"}, plain, body) == SMFIR_CONTINUE)
	check("second message untouched", not mt.eom_check(conn, MT_HDRDELETE)
		and not mt.eom_check(conn, MT_HDRCHANGE))
	mt.disconnect(conn)
end

M.run(cases)
