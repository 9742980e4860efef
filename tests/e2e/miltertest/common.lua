-- common.lua - helpers shared by the miltertest scripts of mailonce-milter.
--
-- The script that loads it (dofile(dir .. "/common.lua")) gets the global
-- table M with open, message, check and run. The variable socket comes from
-- run.sh through -D.

M = {}

-- open - connect, then send the client, MAIL FROM and the queue id {i}
function M.open(queue_id)
	local conn = mt.connect(socket, 20, 0.25)
	if conn == nil then
		error("cannot connect to the milter at " .. socket)
	end
	if mt.conninfo(conn, "client.example.org", "127.0.0.1") ~= nil then
		error("conninfo failed")
	end
	if mt.mailfrom(conn, "<sender@example.org>") ~= nil then
		error("mailfrom failed")
	end
	-- Postfix sends {i} from DATA on; miltertest can attach macros to RCPT.
	mt.macro(conn, SMFIC_RCPT, "i", queue_id)
	return conn
end

-- message - send headers and a body, then end of message
function M.message(conn, rcpts, headers, body)
	for _, rcpt in ipairs(rcpts) do
		if mt.rcptto(conn, rcpt) ~= nil then
			error("rcptto failed")
		end
	end
	for _, h in ipairs(headers) do
		if mt.header(conn, h[1], h[2]) ~= nil then
			error("header " .. h[1] .. " failed")
		end
	end
	-- No mt.eoh: the milter negotiates SMFIP_NOEOH, so the MTA skips that step.
	if mt.bodystring(conn, body) ~= nil then
		error("body failed")
	end
	if mt.eom(conn) ~= nil then
		error("eom failed")
	end
	return mt.getreply(conn)
end

-- check - print "ok - case", or raise an error naming the case
function M.check(case, cond)
	if not cond then
		error("case " .. case .. " failed")
	end
	mt.echo("ok - " .. case)
end

-- run - call fn; print "not ok" with the Lua error, which miltertest does
-- not print itself, and fail the script
function M.run(fn)
	local ok, err = pcall(fn)
	if not ok then
		mt.echo("not ok - " .. tostring(err))
		error(err)
	end
end
