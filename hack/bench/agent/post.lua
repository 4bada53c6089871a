-- wrk: POSTs ~1 KB JSON-ish orders, high and normal priority in turn, so
-- both branches of the route's choice run. Nothing secret in them.
local function order(priority)
  local items = {}
  for i = 1, 12 do
    items[#items + 1] = string.format('{"sku":"SKU-%04d","name":"widget number %d","qty":%d,"price":%d.50}', i * 37, i, i % 5 + 1, i * 3)
  end
  return string.format('{"id":"ORD-20261204-0001","priority":"%s","customer":"customer-42","channel":"web","items":[%s],"note":"deliver to the loading dock"}', priority, table.concat(items, ","))
end

local bodies = { order("high"), order("normal") }
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  n = n + 1
  return wrk.format(nil, "/", nil, bodies[n % 2 + 1])
end
