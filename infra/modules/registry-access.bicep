// Role assignments for Hoist's identity on container registries of one resource group: the
// target registries (AcrPush, or Container Registry Data Importer and Data Reader) and,
// optionally, source registries (AcrPull). Deployed at each registry's resource group, which may
// not be the app's.

@description('Principal (object) id of the user-assigned identity.')
param principalId string

@description('Target registries (names) in this resource group.')
param targetRegistryNames array = []

@description('Role on the target registries: AcrPush, or ContainerRegistryDataImporter (Container Registry Data Importer and Data Reader).')
@allowed([
  'AcrPush'
  'ContainerRegistryDataImporter'
])
param targetRole string = 'AcrPush'

@description('Source registries (names) in this resource group that Hoist reads with its identity (AcrPull).')
param sourceRegistryNames array = []

// Built-in role definition ids (the same in every tenant).
var roleIds = {
  AcrPush: '8311e382-0749-4cb8-b61a-304f252e45ec'
  AcrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d'
  ContainerRegistryDataImporter: '577a9874-89fd-4f24-9dbd-b5034d0ad23a'
}

resource targets 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = [for name in targetRegistryNames: {
  name: name
}]

resource targetRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (name, i) in targetRegistryNames: {
  name: guid(targets[i].id, principalId, roleIds[targetRole])
  scope: targets[i]
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds[targetRole])
  }
}]

resource sources 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = [for name in sourceRegistryNames: {
  name: name
}]

resource sourceRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (name, i) in sourceRegistryNames: {
  name: guid(sources[i].id, principalId, roleIds.AcrPull)
  scope: sources[i]
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.AcrPull)
  }
}]
