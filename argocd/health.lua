-- ArgoCD health check for mlops.dev/Predictor.
--
-- Reads only what the operator writes (operator/src/status/): status.observedGeneration, the
-- conditions Ready, Progressing and Degraded, for a Canary rollout status.rollout, and the Drift
-- condition (spec.monitoring.drift), which only adds to a Healthy message. The message
-- always comes from what decided the status, so ArgoCD shows the operator's own words: during a
-- canary analysis "waiting: N of M samples" (Progressing), after a rollback the measured values
-- and thresholds (Degraded, reason CanaryRolledBack), once promoted the ready pods (Healthy).
--
-- NB: ArgoCD runs scripts from argocd-cm with only the base, table, package and a safe os library
-- open: no string.*, no math.*, and no string methods ("s:sub()"). Use only operators and base
-- functions here. Tested by operator/tests/argocd_health.rs against health_test.yaml.

local hs = {}

local function waiting()
  hs.status = "Progressing"
  hs.message = "waiting for the operator"
  return hs
end

local function condition(status, type)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

-- The message of a condition, or its reason when the message is empty.
local function says(c)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c.reason ~= nil then
    return c.reason
  end
  return ""
end

-- A Healthy message, with the drift when the live answers drifted (Drift True): drift is a fact
-- about the traffic, not about the rollout, so it never changes the health itself.
local function healthy(status, message)
  hs.status = "Healthy"
  hs.message = message
  local drift = condition(status, "Drift")
  if drift ~= nil and drift.status == "True" then
    hs.message = message .. "; drift: " .. says(drift)
  end
  return hs
end

local function evaluate(obj)
  local status = obj.status
  if status == nil then
    return waiting()
  end

  -- A spec change the operator has not acted on yet: every condition describes the old spec.
  local generation = obj.metadata and obj.metadata.generation
  if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
    return waiting()
  end

  local ready = condition(status, "Ready")
  local progressing = condition(status, "Progressing")
  local degraded = condition(status, "Degraded")

  -- Degraded wins: a refused model or a stuck rollout needs a human even while old pods serve.
  if degraded ~= nil and degraded.status == "True" then
    hs.status = "Degraded"
    hs.message = says(degraded)
    return hs
  end

  -- A canary under analysis: the stable pods may all be ready, but the spec's candidate is not
  -- serving yet (the operator also sets Progressing; this holds even if a condition lags).
  local rollout = status.rollout
  if rollout ~= nil and rollout.phase == "Analyzing" then
    hs.status = "Progressing"
    if rollout.message ~= nil and rollout.message ~= "" then
      hs.message = rollout.message
    else
      hs.message = "canary analysis under way"
    end
    return hs
  end

  local rolling = progressing ~= nil and progressing.status == "True"
  if ready ~= nil and ready.status == "True" and not rolling then
    return healthy(status, says(ready))
  end

  if rolling then
    hs.status = "Progressing"
    hs.message = says(progressing)
    return hs
  end

  -- Scaled to zero on purpose: nothing to serve, nothing wrong (ArgoCD treats a Deployment the same).
  if ready ~= nil and ready.reason == "ScaledToZero" then
    hs.status = "Healthy"
    hs.message = says(ready)
    return hs
  end

  -- Not ready, not rolling out, not degraded (e.g. pods crash after a finished rollout): the
  -- Deployment's progress deadline will turn this into Degraded if it does not recover.
  if ready ~= nil then
    hs.status = "Progressing"
    hs.message = says(ready)
    return hs
  end
  return waiting()
end

return evaluate(obj)
