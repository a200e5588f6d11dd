-- Argo CD health check for hubflow's Topic, Producer and Consumer.
-- It reads the conditions hubflow writes: Stalled (only a change can fix it)
-- is Degraded, Reconciling (waiting helps) is Progressing, Ready is Healthy,
-- and a status older than the spec is Progressing until hubflow has seen it.
local hs = { status = "Progressing", message = "waiting for hubflow to reconcile" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "waiting for hubflow to reconcile generation " .. generation
  return hs
end
local found = {}
for _, c in ipairs(obj.status.conditions) do
  found[c.type] = c
end
local function describe(c)
  return c.reason .. ": " .. (c.message or "")
end
if found.Stalled ~= nil and found.Stalled.status == "True" then
  return { status = "Degraded", message = describe(found.Stalled) }
end
if found.Reconciling ~= nil and found.Reconciling.status == "True" then
  return { status = "Progressing", message = describe(found.Reconciling) }
end
if found.Ready ~= nil and found.Ready.status == "True" then
  return { status = "Healthy", message = found.Ready.message or "" }
end
if found.Ready ~= nil then
  hs.message = describe(found.Ready)
end
return hs
