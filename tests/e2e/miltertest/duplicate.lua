-- duplicate.lua - send the retry of one tracked message and check what
-- the DuplicateAction in force does with it.
--
-- run.sh passes, with -D: dir, socket, token1 (already handed off by
-- milter.lua), queue_id, and action (reject, hold or tag).

dofile(dir .. "/common.lua")

local function cases()
	local body = "Hello Bob,\r\nthis is message one.\r\n"
	local tracked = {{"From", "sender@example.org"}, {"Mailonce-Token", token1}}
	local conn = M.open(queue_id)
	local reply = M.message(conn, {"<bob@example.org>"}, tracked, body)

	if action == "reject" then
		M.check("duplicate rejected", reply == SMFIR_REPLYCODE)
	elseif action == "hold" then
		M.check("held duplicate continues", reply == SMFIR_CONTINUE)
		M.check("held duplicate quarantined", mt.eom_check(conn, MT_QUARANTINE))
		M.check("held duplicate token removed", mt.eom_check(conn, MT_HDRCHANGE, "Mailonce-Token", "")
			or mt.eom_check(conn, MT_HDRDELETE, "Mailonce-Token"))
	elseif action == "tag" then
		M.check("tagged duplicate continues", reply == SMFIR_CONTINUE)
		M.check("tagged duplicate has the header", mt.eom_check(conn, MT_HDRADD, "Mailonce-Duplicate",
			"mailing=m1 seq=1 first=QFIRST0001"))
		M.check("tagged duplicate not quarantined", not mt.eom_check(conn, MT_QUARANTINE))
	else
		error("unknown action " .. tostring(action))
	end
	mt.disconnect(conn)
end

M.run(cases)
