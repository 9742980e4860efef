-- locked.lua - send one new tracked message and check the reply.
--
-- run.sh passes, with -D: dir, socket, token3 (mailing m1 seq 3 for
-- dave@example.org), queue_id, and expect: "tempfail" while another
-- process holds the ledger locked, "accept" once it is free again.

dofile(dir .. "/common.lua")

local function cases()
	local headers = {{"From", "sender@example.org"}, {"Mailonce-Token", token3}}
	local conn = M.open(queue_id)
	local reply = M.message(conn, {"<dave@example.org>"}, headers, "Hello Dave\r\n")

	if expect == "tempfail" then
		M.check("locked ledger gets a reply code", reply == SMFIR_REPLYCODE)
		M.check("locked ledger leaves the token", not mt.eom_check(conn, MT_HDRDELETE)
			and not mt.eom_check(conn, MT_HDRCHANGE))
	else
		M.check("free ledger accepts", reply == SMFIR_CONTINUE)
	end
	mt.disconnect(conn)
end

M.run(cases)
